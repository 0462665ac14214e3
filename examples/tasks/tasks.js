// Task functions: each task thread imports this module once, so what it keeps at its top level (a model,
// a cache) lives as long as the thread. Served with examples/tasks/app.js:
//   grainbows --tasks examples/tasks/tasks.js -w 2 examples/tasks/app.js
export function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

export async function* count(n) {
  for (let i = 1; i <= n; i++) yield i;
}
