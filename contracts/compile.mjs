// Compile the contracts with the pinned solcjs and write one artifact JSON per contract.
// Usage: node compile.mjs OUT_DIR
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");
const here = path.dirname(new URL(import.meta.url).pathname);
const outDir = process.argv[2];
if (!outDir) throw new Error("usage: node compile.mjs OUT_DIR");

// contract name -> source file (relative to contracts/)
const CONTRACTS = {
  LilypadSettlement: "src/LilypadSettlement.sol",
  ReentrantReceiver: "test/ReentrantReceiver.sol",
  LilypadRequests: "src/LilypadRequests.sol",
  StringJobClient: "examples/StringJobClient.sol",
  HostileResultReceiver: "test/HostileResultReceivers.sol",
};
const settings = {
  optimizer: { enabled: true, runs: 1000000 },
  viaIR: true,
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};
const sources = {};
for (const file of new Set(Object.values(CONTRACTS))) {
  sources[file] = { content: fs.readFileSync(path.join(here, file), "utf8") };
}
const output = JSON.parse(solc.compile(JSON.stringify({ language: "Solidity", sources, settings })));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
if (errors.length) process.exit(1);

fs.mkdirSync(outDir, { recursive: true });
for (const [name, file] of Object.entries(CONTRACTS)) {
  const compiled = output.contracts[file][name];
  const artifact = {
    contractName: name,
    sourceFile: file,
    compiler: { name: "solc", version: solc.version(), settings },
    abi: compiled.abi,
    bytecode: "0x" + compiled.evm.bytecode.object,
    deployedBytecode: "0x" + compiled.evm.deployedBytecode.object,
  };
  fs.writeFileSync(path.join(outDir, name + ".json"), JSON.stringify(artifact, null, 1) + "\n");
}
