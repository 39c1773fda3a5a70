// Builds {{name}}.wasm from kit.js against wit/ with componentize-js.
import { writeFile } from 'node:fs/promises';
import { componentize } from '@bytecodealliance/componentize-js';

const { component } = await componentize({
  sourcePath: 'kit.js',
  witPath: 'wit',
  worldName: 'recovery-kit',
});
await writeFile('{{name}}.wasm', component);
