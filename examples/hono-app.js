// A Hono app (a Fetch handler), unmodified: routes, JSON, and a streamed response.
//   npx grainbows -b 127.0.0.1:8000 -w 2 examples/hono-app.js
import { Hono } from 'hono';
import { streamText } from 'hono/streaming';

const app = new Hono();
app.get('/', (c) => c.text('Hello from Hono on grainbows'));
app.get('/greet/:name', (c) => c.json({ hello: c.req.param('name') }));
app.post('/echo', async (c) => c.json(await c.req.json()));
app.get('/countdown', (c) =>
  streamText(c, async (stream) => {
    for (let i = 3; i > 0; i--) {
      await stream.writeln(String(i));
      await stream.sleep(100);
    }
    await stream.writeln('liftoff');
  }),
);

export default app;
