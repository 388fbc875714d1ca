// Validate a .glb or .gltf with the Khronos glTF Validator and print its JSON report.
// usage: node validate_gltf.mjs VALIDATOR_MODULE_DIR FILE
// (VALIDATOR_MODULE_DIR: the gltf-validator package folder, installed by the tests' fixture)
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [dir, file] = process.argv.slice(2);
const validator = createRequire(import.meta.url)(path.resolve(dir));
const bytes = new Uint8Array(fs.readFileSync(file));
const report = await validator.validateBytes(bytes, {
  uri: path.basename(file),
  maxIssues: 100,
  externalResourceFunction: (uri) =>
    fs.promises.readFile(path.resolve(path.dirname(file), decodeURIComponent(uri))).then((b) => new Uint8Array(b)),
});
console.log(JSON.stringify(report));
