// CPU work on the task pool, so that this actor's other requests keep flowing meanwhile.
//   grainbows --tasks examples/tasks/tasks.js -w 2 examples/tasks/app.js
//   curl localhost:8000/fib      → 832040, computed on a task thread
//   curl localhost:8000/count    → 1..5, one line each, streamed from a task generator
import { runTask, streamTask } from 'grainbows/tasks';

export default async (req, res) => {
  if (req.url === '/fib') return res.end(String(await runTask('fib', 30)));
  if (req.url === '/count') {
    for await (const i of streamTask('count', 5)) res.write(`${i}\n`);
    return res.end();
  }
  res.end('hello');
};
