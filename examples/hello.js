// The smallest grainbows app: a plain Node (req, res) listener.
//   npx grainbows -b 127.0.0.1:8000 -w 2 examples/hello.js
export default function hello(req, res) {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('Hello, World!');
}
