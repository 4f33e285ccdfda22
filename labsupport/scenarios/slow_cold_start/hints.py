"""Lab 293's hints, from a nudge to the mechanism (`hint("293", level, exercise)`)."""

HINTS = {
    "where_the_time_goes": (
        "Two loads of the same file, one right after the page cache was emptied and one right "
        "after the first: what differs between them, and what is the same? And of the bytes "
        "the cold one fetched, how many does the server use?",
        "storage_s: the cold load's wall time minus the warm load's (only the page cache "
        "differs). loader_s: the warm load's wall time (everything but storage). The bytes "
        "fetched from storage are read_bytes - not rchar, which counts cache hits and misses "
        "reads through a mapping, and not the file's size; the server needs needed_bytes.",
        "Return {'storage_s': cold.wall_s - warm.wall_s, 'loader_s': warm.wall_s, "
        "'needless_bytes': cold.read_bytes - needed_bytes, 'bound': 'storage' if storage_s > "
        "loader_s else 'loader'}.",
    ),
    "load_weights": (
        "Look at what is in the directory and at the table of loaders: which file holds "
        "exactly what the server runs, in the dtype it runs?",
        "model.safetensors holds the bf16 weights by name; safetensors maps the file and builds "
        "tensors from it without unpickling (no code runs) and without a copy on the CPU, and "
        "can put each tensor straight on the device.",
        "from safetensors.torch import load_file; return load_file(os.path.join(directory, "
        "'model.safetensors'), device=device).",
    ),
}
