// A NestJS app on Express. grainbows serves the Express instance Nest builds, after app.init() (no
// app.listen(): grainbows listens). Nest's docs write TypeScript with decorators; this file is what tsc
// emits for them, so it runs as it is.
//   npx grainbows -b 127.0.0.1:8000 -w 2 examples/nest-app.js
import 'reflect-metadata';
import { Controller, Get, Module, Param } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';

class CatsController {
  findAll() {
    return [{ name: 'Tom' }, { name: 'Ginger' }];
  }
  findOne(name) {
    return { name, found: true };
  }
}
const decorate = (decorators, name) =>
  Reflect.decorate(decorators, CatsController.prototype, name, Object.getOwnPropertyDescriptor(CatsController.prototype, name));
decorate([Get()], 'findAll');
decorate([Get(':name'), (target, key) => Param('name')(target, key, 0)], 'findOne');
Reflect.decorate([Controller('cats')], CatsController);

class AppModule {}
Reflect.decorate([Module({ controllers: [CatsController] })], AppModule);

const app = await NestFactory.create(AppModule, { logger: ['warn', 'error'] });
await app.init();

export default app.getHttpAdapter().getInstance();
