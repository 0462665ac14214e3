// Past one machine: the state every actor of every instance shares lives in Redis (docs/operations.md, "Past
// one machine"). socket.io's Redis adapter carries broadcasts between instances (SOCKET_IO_ADAPTER=streams:
// the Redis Streams adapter instead), express-session keeps sessions in Redis (connect-redis), and
// express-rate-limit counts in Redis (rate-limit-redis). Each actor runs this module, so each opens its own
// Redis connections.
//   redis-server --port 6379 &
//   REDIS_URL=redis://127.0.0.1:6379 npx grainbows -b 127.0.0.1:8001 -w 2 --sticky-sessions examples/redis-app.js
//   REDIS_URL=redis://127.0.0.1:6379 npx grainbows -b 127.0.0.1:8002 -w 2 --sticky-sessions examples/redis-app.js
// and a load balancer in front that keeps a client on one instance (nginx: `hash $remote_addr consistent`).
import http from 'node:http';
import { threadId } from 'node:worker_threads';
import express from 'express';
import session from 'express-session';
import { RedisStore as SessionStore } from 'connect-redis';
import { rateLimit } from 'express-rate-limit';
import { RedisStore as RateLimitStore } from 'rate-limit-redis';
import { createClient } from 'redis';
import { Server } from 'socket.io';
import { createAdapter as pubSubAdapter } from '@socket.io/redis-adapter';
import { createAdapter as streamsAdapter } from '@socket.io/redis-streams-adapter';

const redis = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
const publisher = redis.duplicate();
const subscriber = redis.duplicate();
await Promise.all([redis.connect(), publisher.connect(), subscriber.connect()]);

/** Which instance and actor answered: the tests check that requests and clients are spread. */
const where = { instance: process.env.INSTANCE ?? String(process.pid), actor: threadId };

const app = express();
app.set('trust proxy', 'loopback'); // the client's address from the load balancer's X-Forwarded-For
app.use(
  session({
    store: new SessionStore({ client: redis, prefix: 'session:' }),
    secret: process.env.SESSION_SECRET ?? 'change me',
    resave: false,
    saveUninitialized: false,
  }),
);
const visitsLimit = rateLimit({
  windowMs: 60_000,
  limit: Number(process.env.VISITS_PER_MINUTE ?? 5),
  standardHeaders: 'draft-8',
  legacyHeaders: false,
  store: new RateLimitStore({ sendCommand: (...args) => redis.sendCommand(args), prefix: 'rate:' }),
});
app.get('/visits', visitsLimit, (req, res) => {
  req.session.visits = (req.session.visits ?? 0) + 1;
  res.json({ visits: req.session.visits, ...where });
});
app.get('/where', (req, res) => res.json(where));

const server = http.createServer(app);
const adapter = process.env.SOCKET_IO_ADAPTER === 'streams' ? streamsAdapter(redis) : pubSubAdapter(publisher, subscriber);
const io = new Server(server, { adapter });
io.on('connection', (socket) => {
  socket.emit('where', where);
  socket.on('say', (text) => io.emit('said', { text: String(text).slice(0, 500), ...where }));
});

export default server;
