// A Koa app with @koa/router, unmodified: grainbows calls app.callback() itself.
//   npx grainbows -b 127.0.0.1:8000 -w 2 examples/koa-app.js
import Koa from 'koa';
import Router from '@koa/router';
import { koaBody } from 'koa-body';

const app = new Koa();
const router = new Router();
const todos = [];

router.get('/todos', (ctx) => {
  ctx.body = todos;
});
router.post('/todos', koaBody(), (ctx) => {
  const todo = { id: todos.length + 1, title: String(ctx.request.body?.title ?? '') };
  todos.push(todo);
  ctx.status = 201;
  ctx.body = todo;
});
// A slow upstream call: the actor serves other requests meanwhile.
router.get('/slow', async (ctx) => {
  const ms = Number(ctx.query.ms ?? 1000);
  await new Promise((resolve) => setTimeout(resolve, ms));
  ctx.body = { slept: ms };
});

app.use(router.routes()).use(router.allowedMethods());

export default app;
