// A Fastify app with plugins, unmodified: grainbows serves the instance after ready(). Plugins that listen
// on fastify.server (here @fastify/websocket) get its upgrades; onListen and onClose hooks run as usual.
//   npx grainbows -b 127.0.0.1:8000 -w 2 examples/fastify-app.js
import Fastify from 'fastify';
import websocket from '@fastify/websocket';

const fastify = Fastify({ logger: { level: 'warn' } });
await fastify.register(websocket);

fastify.get('/hello', async () => ({ hello: 'world' }));
fastify.get('/slow', async (request) => {
  const ms = Number(request.query.ms ?? 1000);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return { slept: ms };
});
// A WebSocket route: each message comes back upper-cased.
fastify.register(async (scoped) => {
  scoped.get('/shout', { websocket: true }, (socket) => {
    socket.on('message', (message) => socket.send(String(message).toUpperCase()));
  });
});
fastify.addHook('onListen', async () => fastify.log.warn(`ready at ${JSON.stringify(fastify.server.address())}`));

export default fastify;
