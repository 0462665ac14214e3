// An Express 5 app, unmodified: JSON API, a slow endpoint that sleeps, a streamed download.
//   npx grainbows -b 127.0.0.1:8000 -w 2 examples/express-app.js
import express from 'express';

const app = express();
app.use(express.json());

const notes = [];
app.get('/notes', (req, res) => res.json(notes));
app.post('/notes', (req, res) => {
  const note = { id: notes.length + 1, text: String(req.body?.text ?? '') };
  notes.push(note);
  res.status(201).json(note);
});
// A slow upstream call: the actor serves other requests meanwhile.
app.get('/slow', async (req, res) => {
  await new Promise((resolve) => setTimeout(resolve, Number(req.query.ms ?? 1000)));
  res.json({ slept: Number(req.query.ms ?? 1000) });
});
app.get('/download', (req, res) => {
  res.type('text/plain');
  let line = 0;
  const more = () => {
    while (line < 10_000) if (!res.write(`line ${line++}\n`)) return res.once('drain', more);
    res.end();
  };
  more();
});

export default app;
