// SPDX-License-Identifier: GPL-3.0-or-later
//
// Flamenco job type: build a SAM 3D asset library from a folder of photos as N shard tasks.
//
// Install: copy this file into the `scripts` folder next to the `flamenco-manager` executable
// (see flamenco/README.md). The job type's name is the file name without `.js`: `sam3d-batch`.
//
// Each task runs, on a worker that accepts "blender" tasks:
//   {blender} --online-mode --command sam3d batch <photos> -o <library> --shard K/N
//             [--max-cost <max_cost / N>] [--size M] [--triangles N] [--bake RES]
// with every path and number as its own argument (Flamenco runs it without a shell).

const JOB_TYPE = {
    label: "SAM 3D Asset Library",
    description: "Reconstruct every photo and mask of a folder with SAM 3D (Runware) into an asset library, " +
        "split into shards that run at the same time on any number of workers",
    settings: [
        {
            key: "photos", label: "Photos", type: "string", subtype: "dir_path", required: true,
            // Prefilled from the SAM 3D panel's Photos folder when that add-on is enabled where the job is
            // submitted (the button next to the field reads it again); empty otherwise.
            eval: "str(abspath(C.scene.sam3d.batch_directory)) " +
                "if getattr(getattr(C.scene, 'sam3d', None), 'batch_directory', '') else ''",
            description: "Folder of photos and masks (name.png + name_mask.png, cut-outs, or name/image.png + " +
                "masks; sub-folders become catalogs), as every worker sees it: an absolute path on the " +
                "shared storage",
        },
        {
            key: "library", label: "Library", type: "string", subtype: "dir_path", required: true,
            description: "Asset library folder the shards write to, shared by every worker (an absolute path " +
                "on the shared storage)",
        },
        {
            key: "shards", label: "Shards", type: "int32", required: true, default: 4, propargs: { min: 1 },
            description: "Number of tasks the photos are split into; they run at the same time, on one or " +
                "many workers",
        },
        {
            key: "max_cost", label: "Cost Limit (USD)", type: "float", default: 0.0, propargs: { min: 0.0 },
            eval: "getattr(getattr(C.scene, 'sam3d', None), 'batch_max_cost', 0.0)",
            description: "Cost limit of the whole batch in USD; each shard gets an equal share " +
                "(max_cost / shards). 0: no limit",
        },
        {
            key: "size", label: "Target Size", type: "float", default: 0.0, propargs: { min: 0.0 },
            eval: "getattr(getattr(C.scene, 'sam3d', None), 'batch_target_size', 0.0)",
            description: "Scale each asset so its longest side is this. 0: keep SAM 3D's size",
        },
        {
            key: "triangles", label: "Triangle Budget", type: "int32", default: 0, propargs: { min: 0 },
            eval: "getattr(getattr(C.scene, 'sam3d', None), 'batch_triangle_budget', 0)",
            description: "Decimate assets above this many triangles. 0: keep every triangle",
        },
        {
            key: "bake", label: "Bake Resolution", type: "int32", default: 0, propargs: { min: 0 },
            description: "Bake each asset's colours into a texture of this many pixels a side. 0: no bake",
        },
    ],
};

// Costs are split in whole millionths of a dollar, rounded down, so that the shards together never
// exceed the limit of the batch.
const MICRO_USD = 1000000;

function compileJob(job) {
    const settings = job.settings;
    const photos = pathSetting(settings, "photos", "Photos");
    const library = pathSetting(settings, "library", "Library");
    const shards = intSetting(settings, "shards", "Shards", 4);
    if (shards < 1) {
        throw new Error(`Shards must be at least 1, not ${shards}.`);
    }
    const maxCost = numberSetting(settings, "max_cost", "Cost Limit");
    const size = numberSetting(settings, "size", "Target Size");
    const triangles = intSetting(settings, "triangles", "Triangle Budget", 0);
    const bake = intSetting(settings, "bake", "Bake Resolution", 0);
    const shardCost = maxCost > 0 ? costPerShard(maxCost, shards) : "";

    const options = [];
    if (shardCost) {
        options.push("--max-cost", shardCost);
    }
    if (size > 0) {
        options.push("--size", String(size));
    }
    if (triangles > 0) {
        options.push("--triangles", String(triangles));
    }
    if (bake > 0) {
        options.push("--bake", String(bake));
    }

    print(`SAM 3D asset library: ${shards} shard(s) of ${photos} into ${library}` +
        (shardCost ? `, at most $${shardCost} each` : ""));

    // No dependencies: every shard takes its own items, so all of them can run at once.
    for (let k = 1; k <= shards; k++) {
        const task = author.Task(`shard-${k}-of-${shards}`, "blender");
        task.addCommand(author.Command("exec", {
            exe: "{blender}",
            args: [
                // Before --command: that one takes every argument after it (and implies --background).
                "--online-mode",
                "--command", "sam3d", "batch", photos,
                "-o", library,
                "--shard", `${k}/${shards}`,
            ].concat(options),
        }));
        job.addTask(task);
    }
}

// A path every worker can reach: absolute, or starting with a Flamenco variable such as {jobs} (the Manager
// has already turned two-way variable values into their {name} when the job was submitted).
function pathSetting(settings, key, label) {
    const value = settings[key];
    if (value === undefined || value === null || String(value).trim() === "") {
        throw new Error(`${label} is empty: give the folder's absolute path on the shared storage.`);
    }
    const text = String(value).trim();
    if (text.startsWith("//")) {
        throw new Error(`${label} "${text}" is relative to the .blend file, which the workers do not open: ` +
            "give an absolute path (untick Relative Path in Blender's file browser).");
    }
    const absolute = text.startsWith("/") || text.startsWith("\\\\") || text.startsWith("{") ||
        /^[A-Za-z]:[\\/]/.test(text);
    if (!absolute) {
        throw new Error(`${label} "${text}" is a relative path, which would be relative to wherever each ` +
            "worker runs: give an absolute path on the shared storage.");
    }
    return text;
}

// A finite number >= 0; missing or empty means 0 (the setting is off).
function numberSetting(settings, key, label) {
    const value = settings[key];
    if (value === undefined || value === null || (typeof value === "string" && value.trim() === "")) {
        return 0;
    }
    const number = typeof value === "number" ? value : Number(String(value).trim());
    if (typeof value === "boolean" || !Number.isFinite(number)) {
        throw new Error(`${label} must be a number, not "${value}".`);
    }
    if (number < 0) {
        throw new Error(`${label} cannot be negative (${number}); use 0 to leave it off.`);
    }
    return number;
}

function intSetting(settings, key, label, fallback) {
    const value = settings[key];
    if (value === undefined || value === null || (typeof value === "string" && value.trim() === "")) {
        return fallback;
    }
    const number = typeof value === "number" ? value : Number(String(value).trim());
    if (typeof value === "boolean" || !Number.isInteger(number)) {
        throw new Error(`${label} must be a whole number, not "${value}".`);
    }
    if (number < 0) {
        throw new Error(`${label} cannot be negative (${number}).`);
    }
    return number;
}

// max_cost / shards in USD, as a decimal string, rounded down to a millionth of a dollar.
function costPerShard(maxCost, shards) {
    const total = Math.round(maxCost * MICRO_USD);
    if (!Number.isSafeInteger(total)) {
        throw new Error(`Cost Limit ${maxCost} is too large.`);
    }
    const share = Math.floor(total / shards);
    if (share < 1) {
        throw new Error(`Cost Limit $${maxCost} is too small to share between ${shards} shards ` +
            "(under $0.000001 each): raise it, use fewer shards, or set it to 0 for no limit.");
    }
    return (share / MICRO_USD).toFixed(6).replace(/\.?0+$/, "");
}
