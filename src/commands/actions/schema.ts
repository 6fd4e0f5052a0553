// `kvmlab schema`: the JSON Schema editors use for experiment files, generated from the zod schemas.
import { experimentJsonSchema } from '../../experiment/json-schema.js';

export function schema(): void {
  process.stdout.write(`${JSON.stringify(experimentJsonSchema(), null, 2)}\n`);
}
