// Every kvmlab command, in the order --help lists them. A command's file here says what it takes —
// name, arguments, options, help — and imports nothing heavy; what it does lives in actions/ and is
// loaded by its action, so `kvmlab --help` or `validate` never load vega, ssh2 or a backend.
import type { Command } from 'commander';
import { registerBundle } from './bundle.js';
import { registerCompare } from './compare.js';
import { registerReport } from './report.js';
import { registerCleanup } from './cleanup.js';
import { registerImage } from './image.js';
import { registerList } from './list.js';
import { registerMerge } from './merge.js';
import { registerPlan } from './plan.js';
import { registerProbe } from './probe.js';
import { registerRun } from './run.js';
import { registerSchema } from './schema.js';
import { registerSetup } from './setup.js';
import { registerValidate } from './validate.js';

export type Register = (program: Command) => void;

export const commands: Register[] = [registerRun, registerPlan, registerReport, registerCompare, registerMerge, registerBundle, registerValidate, registerList, registerProbe, registerImage, registerSetup, registerSchema, registerCleanup];
