// Every kvmlab command, in the order --help lists them.
import type { Command } from 'commander';
import { registerList } from './list.js';
import { registerRun } from './run.js';
import { registerSchema } from './schema.js';
import { registerValidate } from './validate.js';

export const commands: ((program: Command) => void)[] = [registerRun, registerValidate, registerList, registerSchema];
