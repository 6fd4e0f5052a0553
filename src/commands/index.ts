// Every kvmlab command, in the order --help lists them.
import type { Command } from 'commander';
import { registerBundle } from './bundle.js';
import { registerCleanup } from './cleanup.js';
import { registerCompare } from './compare.js';
import { registerImage } from './image.js';
import { registerList } from './list.js';
import { registerProbe } from './probe.js';
import { registerReport } from './report.js';
import { registerRun } from './run.js';
import { registerSchema } from './schema.js';
import { registerValidate } from './validate.js';

export const commands: ((program: Command) => void)[] = [registerRun, registerReport, registerCompare, registerBundle, registerValidate, registerList, registerProbe, registerImage, registerSchema, registerCleanup];
