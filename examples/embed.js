// Embedding grainbows: serve an app from code, watch its actors, tune the pool while it serves.
//   npm run build && node examples/embed.js
// (docs/api.md walks through it.) Prints what happens and exits 0 when every step worked.
import { fileURLToPath } from 'node:url';
import { serve } from 'grainbows';

const server = await serve({
  app: fileURLToPath(new URL('./hello.js', import.meta.url)), // MODULE[:EXPORT], as on the command line
  bind: ['127.0.0.1:0'], // port 0: the kernel picks one; server.urls has the real address
  workers: 2,
  workerConnections: 500,
  gracefulTimeout: 5,
  resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 8 }, // per actor thread
  actorEnv: { ...process.env, GREETING: 'hello' }, // the actors' process.env
  logLevel: 'warning',
});
server.on('actor-start', ({ id, generation }) => console.log(`actor ${id} (generation ${generation}) started`));
server.on('actor-exit', ({ id, generation }) => console.log(`actor ${id} (generation ${generation}) exited`));
server.on('actor-crash', ({ id }, error) => console.log(`actor ${id} crashed: ${error?.message}`));

const [url] = server.urls;
console.log(`serving at ${url}: ${await (await fetch(url)).text()}`);

await server.resize(3); // a third actor; shrinking drains the removed ones first
const grown = await server.stats();
console.log(`resized: ${grown.actors.length} actors, ${grown.actors.reduce((sum, actor) => sum + actor.requestsServed, 0)} requests served so far`);

await server.reload(); // a new generation imports the app afresh; the old one finishes its requests
const reloaded = await server.stats();
console.log(`reloaded: generation ${reloaded.generation}, actors ${reloaded.actors.map((actor) => `${actor.actorId}:${actor.state}`).join(' ')}`);

for (const actor of reloaded.actors) {
  console.log(
    `  actor ${actor.actorId}: ${actor.connections} connections, loop ${(actor.eventLoopUtilization * 100).toFixed(1)}%, heap ${(actor.heapUsed / 2 ** 20).toFixed(1)} MB`,
  );
}

await server.close({ graceful: true }); // stop accepting, let in-flight requests finish, stop the actors
console.log('closed');
