// The one app every contender serves in the benchmark: grainbows loads it as an app, the baselines mount it
// on node:http and node:cluster.
import { burn } from './burn.js';

export default function benchApp(req, res) {
  const url = new URL(req.url, 'http://x');
  switch (url.pathname) {
    case '/heavy':
      // CPU work inside the request (an image resize, a template render): bench/tasks.ts.
      return res.end(String(burn(Number(url.searchParams.get('n')))));
    case '/sleep':
      // A sleepy request: a slow upstream, a long poll.
      return setTimeout(() => res.end('slept'), Number(url.searchParams.get('ms') ?? 1000));
    case '/stream': {
      // 20 chunks 100 ms apart: a slow streamed response.
      res.writeHead(200, { 'content-type': 'text/plain' });
      let sent = 0;
      const timer = setInterval(() => {
        res.write(`chunk ${sent}\n`);
        if (++sent === 20) {
          clearInterval(timer);
          res.end();
        }
      }, 100);
      res.on('close', () => clearInterval(timer));
      return;
    }
    case '/upload': {
      let bytes = 0;
      req.on('data', (chunk) => (bytes += chunk.length));
      req.on('end', () => res.end(String(bytes)));
      return;
    }
    case '/big': {
      const chunk = Buffer.alloc(64 * 1024, 120);
      const total = Number(url.searchParams.get('mb') ?? 64) * 1024 * 1024;
      let written = 0;
      res.writeHead(200, { 'content-length': total });
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) return res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    default:
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 13 });
      res.end('Hello, World!');
  }
}
