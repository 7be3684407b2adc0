// The Flamenco job type flamenco/sam3d-batch.js, run the way Flamenco Manager runs it: the script in a fresh
// JavaScript context holding only Flamenco's globals (author, print, path, process, ...), compiled in strict
// mode, then compileJob(job) called with a job whose settings are plain JSON values.
//
//   node --test tests/flamenco/test_job_type.mjs      (or: pytest tests/client/test_flamenco.py)
//
// Name the file: `node --test tests/flamenco/` finds nothing here on Node 20 (its directory search only takes
// names like *.test.mjs or test-*.mjs) and fails on Node 21+ (a directory is no longer searched).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import vm from "node:vm";

const SCRIPT = new URL("../../flamenco/sam3d-batch.js", import.meta.url);
const SOURCE = readFileSync(SCRIPT, "utf8");

// A stand-in for Flamenco Manager's job compiler (internal/manager/job_compilers: author.go, scripts.go,
// js_globals.go): it records what the script authors. Like the real `author` module, Task() refuses an empty
// name or type, and every command parameter must survive the trip to JSON (Flamenco stores them as JSON).
function load() {
    const printed = [];
    const author = {
        Task(name, type) {
            if (typeof name !== "string" || !name.trim()) throw new Error("author.Task(name, type): name is required");
            if (typeof type !== "string" || !type.trim()) throw new Error("author.Task(name, type): type is required");
            const task = {
                name, type, commands: [], dependencies: [],
                addCommand(command) { task.commands.push(command); },
                addDependency(other) { task.dependencies.push(other); },
            };
            return task;
        },
        Command(name, parameters, totalStepCount) {
            return { name, parameters: JSON.parse(JSON.stringify(parameters)), totalStepCount: totalStepCount || 0 };
        },
    };
    const unavailable = (name) => () => { throw new Error(`${name}() is not expected in this job type`); };
    const context = vm.createContext({
        author,
        print: (...args) => { printed.push(args.join(" ")); },
        alert: (...args) => { printed.push(args.join(" ")); },
        path: {
            basename: unavailable("path.basename"), dirname: unavailable("path.dirname"),
            join: unavailable("path.join"), stem: unavailable("path.stem"),
        },
        process: { cwd: unavailable("process.cwd"), platform: "linux" },
        frameChunker: unavailable("frameChunker"),
        frameCount: unavailable("frameCount"),
        formatTimestampLocal: unavailable("formatTimestampLocal"),
        shellSplit: unavailable("shellSplit"),
    });
    // Flamenco compiles job scripts in strict mode (goja.Compile(filename, script, true)).
    vm.runInContext(`"use strict";\n${SOURCE}`, context, { filename: "sam3d-batch.js" });
    const jobType = vm.runInContext("JOB_TYPE", context);
    const compileJob = vm.runInContext("compileJob", context);
    return { jobType, compileJob, printed };
}

function compile(settings) {
    const { compileJob, printed } = load();
    const tasks = [];
    const job = {
        name: "library", type: "sam3d-batch", priority: 50, created: new Date(0),
        settings: JSON.parse(JSON.stringify(settings)),
        metadata: {},
        addTask(task) { tasks.push(task); },
    };
    compileJob(job);
    return { tasks, printed };
}

const BASE = { photos: "/shared/photos", library: "/shared/library", shards: 3, max_cost: 0, size: 0,
               triangles: 0, bake: 0 };

function argvOf(task) {
    assert.equal(task.commands.length, 1);
    const [command] = task.commands;
    assert.equal(command.name, "exec");
    assert.deepEqual(Object.keys(command.parameters).sort(), ["args", "exe"]);
    assert.equal(command.parameters.exe, "{blender}");
    for (const arg of command.parameters.args) {
        // Worker-side variable expansion only touches string arguments, and numbers would be formatted by Go.
        assert.equal(typeof arg, "string", `argument ${JSON.stringify(arg)} is not a string`);
    }
    return command.parameters.args;
}

function head(photos, library, k, n) {
    return ["--online-mode", "--command", "sam3d", "batch", photos, "-o", library, "--shard", `${k}/${n}`];
}

test("the job type declares its label and settings as Flamenco expects them", () => {
    const { jobType } = load();
    assert.equal(jobType.label, "SAM 3D Asset Library");
    assert.equal(typeof jobType.description, "string");
    const byKey = Object.fromEntries(jobType.settings.map((s) => [s.key, s]));
    assert.deepEqual(Object.keys(byKey), ["photos", "library", "shards", "max_cost", "size", "triangles", "bake"]);
    const types = { photos: "string", library: "string", shards: "int32", max_cost: "float", size: "float",
                    triangles: "int32", bake: "int32" };
    for (const [key, type] of Object.entries(types)) {
        assert.equal(byKey[key].type, type, key);
        assert.ok(byKey[key].description, `${key} has no description`);
    }
    assert.equal(byKey.photos.subtype, "dir_path");
    assert.equal(byKey.library.subtype, "dir_path");
    assert.equal(byKey.photos.required, true);
    assert.equal(byKey.library.required, true);
    assert.equal(byKey.shards.default, 4);
    assert.equal(byKey.shards.propargs.min, 1);
    for (const key of ["max_cost", "size", "triangles", "bake"]) {
        assert.equal(byKey[key].default, 0, key);
        assert.equal(byKey[key].propargs.min, 0, key);
    }
    const allowed = new Set(["key", "type", "subtype", "choices", "propargs", "description", "label", "default",
                             "eval", "evalInfo", "visible", "required", "editable"]);
    for (const setting of jobType.settings) {
        for (const field of Object.keys(setting)) {
            assert.ok(allowed.has(field), `${setting.key}.${field} is not an AvailableJobSetting field`);
        }
        assert.equal(setting.key.includes("-"), false);
    }
});

for (const n of [1, 3, 8]) {
    test(`${n} shard(s): ${n} independent blender task(s), shard K/${n} each`, () => {
        const { tasks } = compile({ ...BASE, shards: n });
        assert.equal(tasks.length, n);
        tasks.forEach((task, i) => {
            assert.equal(task.type, "blender");
            assert.equal(task.name, `shard-${i + 1}-of-${n}`);
            assert.deepEqual(task.dependencies, []);
            assert.deepEqual(argvOf(task), head("/shared/photos", "/shared/library", i + 1, n));
        });
        assert.equal(new Set(tasks.map((t) => t.name)).size, n);
    });
}

test("every option set: each shard gets max_cost / N, and the other flags as given", () => {
    const { tasks, printed } = compile({ ...BASE, shards: 3, max_cost: 1.5, size: 1.25, triangles: 20000,
                                         bake: 1024 });
    assert.equal(tasks.length, 3);
    tasks.forEach((task, i) => {
        assert.deepEqual(argvOf(task), [
            ...head("/shared/photos", "/shared/library", i + 1, 3),
            "--max-cost", "0.5", "--size", "1.25", "--triangles", "20000", "--bake", "1024",
        ]);
    });
    assert.equal(printed.length, 1);
    assert.match(printed[0], /3 shard\(s\).*\$0\.5 each/);
});

test("the cost share is rounded down to a millionth of a dollar: the shards never exceed the limit", () => {
    const cases = [[1, 3, "0.333333"], [0.3, 3, "0.1"], [1, 8, "0.125"], [2, 1, "2"], [0.0038, 4, "0.00095"],
                   [10, 4, "2.5"], [0.1, 7, "0.014285"], [100, 1, "100"]];
    for (const [maxCost, n, share] of cases) {
        const { tasks } = compile({ ...BASE, shards: n, max_cost: maxCost });
        for (const task of tasks) {
            const args = argvOf(task);
            const at = args.indexOf("--max-cost");
            assert.ok(at > 0, `no --max-cost for ${maxCost} over ${n}`);
            assert.equal(args[at + 1], share, `${maxCost} over ${n}`);
        }
        assert.ok(Number(share) * n <= maxCost + 1e-12, `${share} x ${n} > ${maxCost}`);
    }
});

test("settings at 0 leave their flag out, each on its own", () => {
    const flags = { max_cost: ["--max-cost", 2, "2"], size: ["--size", 0.5, "0.5"],
                    triangles: ["--triangles", 5000, "5000"], bake: ["--bake", 512, "512"] };
    for (const [key, [flag, value, text]] of Object.entries(flags)) {
        const { tasks } = compile({ ...BASE, shards: 1, [key]: value });
        assert.deepEqual(argvOf(tasks[0]), [...head("/shared/photos", "/shared/library", 1, 1), flag, text]);
    }
});

test("missing optional settings (a job submitted through the API) count as 0, missing shards as 4", () => {
    const { tasks } = compile({ photos: "/shared/photos", library: "/shared/library" });
    assert.equal(tasks.length, 4);
    assert.deepEqual(argvOf(tasks[3]), head("/shared/photos", "/shared/library", 4, 4));
});

test("paths are separate argv entries, unquoted and untouched (no shell runs them)", () => {
    const photos = "/mnt/farm/My Photos/it's \"here\" $HOME;rm -rf";
    const library = "S:\\Asset Libraries\\SAM 3D";
    const { tasks } = compile({ ...BASE, shards: 2, photos, library });
    assert.deepEqual(argvOf(tasks[1]), head(photos, library, 2, 2));
});

test("paths through Flamenco variables ({jobs}, two-way variables) are passed on for the worker to expand", () => {
    const { tasks } = compile({ ...BASE, shards: 2, photos: "{jobs}/photos", library: "{shared}/library" });
    assert.deepEqual(argvOf(tasks[0]), head("{jobs}/photos", "{shared}/library", 1, 2));
});

test("surrounding blanks of a path are dropped", () => {
    const { tasks } = compile({ ...BASE, shards: 1, photos: "  /shared/photos\n", library: "C:/lib " });
    assert.deepEqual(argvOf(tasks[0]), head("/shared/photos", "C:/lib", 1, 1));
});

function refuses(settings, pattern) {
    assert.throws(() => compile(settings), (error) => {
        assert.ok(error instanceof Error || (error && typeof error.message === "string"),
                  `threw ${String(error)}, not an Error`);
        assert.match(error.message, pattern);
        assert.doesNotMatch(error.message, /undefined|NaN|\[object/);
        return true;
    });
}

test("invalid settings are refused with a sentence saying what is wrong", () => {
    refuses({ ...BASE, shards: 0 }, /Shards must be at least 1, not 0/);
    refuses({ ...BASE, shards: -2 }, /Shards cannot be negative \(-2\)/);
    refuses({ ...BASE, shards: 2.5 }, /Shards must be a whole number, not "2\.5"/);
    refuses({ ...BASE, shards: "many" }, /Shards must be a whole number, not "many"/);
    refuses({ ...BASE, photos: "" }, /Photos is empty/);
    refuses({ ...BASE, photos: "   " }, /Photos is empty/);
    refuses({ ...BASE, library: "" }, /Library is empty/);
    refuses({ ...BASE, library: undefined }, /Library is empty/);
    refuses({ ...BASE, photos: "//photos/" }, /Photos "\/\/photos\/" is relative to the \.blend file/);
    refuses({ ...BASE, library: "library" }, /Library "library" is a relative path/);
    refuses({ ...BASE, max_cost: -1 }, /Cost Limit cannot be negative \(-1\)/);
    refuses({ ...BASE, size: -0.5 }, /Target Size cannot be negative \(-0\.5\)/);
    refuses({ ...BASE, triangles: -100 }, /Triangle Budget cannot be negative \(-100\)/);
    refuses({ ...BASE, bake: -512 }, /Bake Resolution cannot be negative \(-512\)/);
    refuses({ ...BASE, bake: 0.5 }, /Bake Resolution must be a whole number/);
    refuses({ ...BASE, size: "big" }, /Target Size must be a number, not "big"/);
    refuses({ ...BASE, max_cost: 0.000002, shards: 3 }, /Cost Limit \$0\.000002 is too small to share between 3 shards/);
});

test("a refused job authors no task", () => {
    const { compileJob } = load();
    const tasks = [];
    assert.throws(() => compileJob({ settings: { ...BASE, bake: -1 }, addTask: (t) => tasks.push(t) }));
    assert.equal(tasks.length, 0);
});
