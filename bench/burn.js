// The heavy work of the mixed benchmark (bench/tasks.ts): a fixed amount of CPU, the same in every contender,
// inline in a request or on the task pool (this file is also the task module: `--tasks bench/burn.js`).
export function burn(iterations) {
  let x = 0;
  for (let i = 0; i < iterations; i++) x = (x * 31 + i) | 0;
  return x;
}
