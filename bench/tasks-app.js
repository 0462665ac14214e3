// bench/app.js with its heavy route on the task pool (`--tasks bench/burn.js`) instead of in the request.
import { runTask } from 'grainbows/tasks';
import app from './app.js';

export default async function tasksApp(req, res) {
  if (!req.url.startsWith('/heavy')) return app(req, res);
  const iterations = Number(new URL(req.url, 'http://x').searchParams.get('n'));
  res.end(String(await runTask('burn', iterations)));
}
