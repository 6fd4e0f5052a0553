// The editor-facing JSON Schema of experiment files, generated from the same zod schemas that
// validate them (input side: what a person writes, before defaults and unit conversion).
import * as z from 'zod';
import { ExperimentSchema } from './schema.js';

export function experimentJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ExperimentSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...schema, $id: 'https://kvmlab.invalid/experiment.schema.json', title: 'kvmlab experiment' };
}
