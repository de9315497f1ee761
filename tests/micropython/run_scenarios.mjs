// Runs portable scenario files under the MicroPython WebAssembly port and prints their lines.
//
// Usage: node run_scenarios.mjs <repo root> <scenario file>...
// Copies the portable core (agent/core/) and each scenario file into MicroPython's in-memory file system, imports
// the scenario module and prints "=== <name>" followed by the lines its run() returned, so the
// Python side can compare them with a CPython run of the same file.
import { readFileSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [root, ...scenarios] = process.argv.slice(2);
if (!root || scenarios.length === 0) {
  process.stderr.write("usage: node run_scenarios.mjs <repo root> <scenario file>...\n");
  process.exit(2);
}

const mp = await loadMicroPython({
  heapsize: 16 * 1024 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

mp.FS.mkdir("/work");
// Only the portable core: agent/__init__.py (a docstring) and agent/core/. Nothing else of the
// runtime is copied, so a core module that imports outside its folder fails here.
mp.FS.mkdir("/work/agent");
mp.FS.mkdir("/work/agent/core");
mp.FS.writeFile("/work/agent/__init__.py", readFileSync(join(root, "agent", "__init__.py"), "utf8"));
for (const name of readdirSync(join(root, "agent", "core"))) {
  if (name.endsWith(".py")) {
    mp.FS.writeFile("/work/agent/core/" + name, readFileSync(join(root, "agent", "core", name), "utf8"));
  }
}
mp.FS.mkdir("/work/scenarios");
for (const path of scenarios) {
  mp.FS.writeFile("/work/scenarios/" + basename(path), readFileSync(path, "utf8"));
}

let failed = false;
for (const path of scenarios) {
  const module = basename(path, ".py");
  try {
    await mp.runPythonAsync(
      "import sys\n" +
      "if '/work' not in sys.path:\n    sys.path.insert(0, '/work')\n" +
      "if '/work/scenarios' not in sys.path:\n    sys.path.insert(0, '/work/scenarios')\n" +
      `import ${module}\n` +
      `print('=== ${module}')\n` +
      `for _line in ${module}.run():\n    print(_line)\n`,
    );
  } catch (err) {
    failed = true;
    process.stderr.write(`scenario ${module} failed under MicroPython: ${err}\n`);
  }
}
process.exit(failed ? 1 : 0);
