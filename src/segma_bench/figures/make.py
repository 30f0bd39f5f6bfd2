"""The figures of Section VI, one function per kind: a trained method + data + seed + output folder.

    samples         Figs. 3-5: one row per Gaussian component (SeGMA) or class value (baselines)
    interpolation   Fig. 6: linear interpolation between two encoded test images of different classes
    style-transfer  Fig. 7: the path from z to z + (mu_t - mu_s) (Eq. 10), decoded in steps
    intensity       Fig. 8: z + a (mu_s - mu_t) (Eq. 11) for a sequence of a
    means           Section V: pairwise distances of the learned means (markdown table + heatmap)

Every kind writes NAME.png (a plain torchvision grid), NAME_labelled.png (the same with labels drawn)
and NAME.txt (the caption: rows, columns, run, seed, command). All randomness comes from a
torch.Generator seeded by `seed`, so the same seed gives byte-identical PNGs."""
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from segma_bench.core.devices import seeded_rng
from segma_bench.core.errors import BadValueError
from segma_bench.core.storage import atomic_write_file, atomic_write_text
from segma_bench.datasets.base import to_float
from segma_bench.evaluation import latent_ops
from segma_bench.methods.base import OperationNotSupported
from segma_bench.training.run_folder import CONFIG, RunFolder, find_run_folders

from . import grids

KINDS = ("samples", "interpolation", "style-transfer", "intensity", "means")
TABLE_KINDS = ("samples", "interpolation", "style-transfer")
TABLE_METHODS = ("m1m2", "adgm", "segma")           # the paper's panel order: (a) M1+M2 (b) ADGM (c) SeGMA
DISPLAY_NAMES = {"segma": "SeGMA", "segma-unsup": "SeGMA (unsupervised)", "cwae": "CWAE", "m1m2": "M1+M2",
                 "adgm": "ADGM"}
SAMPLE_FIGURE_NUMBER = {"mnist": "3", "svhn": "4", "celeba": "5"}
INTERPOLATION_STEPS = 8        # decoded columns, t = 0 and t = 1 included
STYLE_STEPS = 8
INTENSITY_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class FigureContext:
    """What a caption says about where a figure comes from."""
    run: str = "(a method in memory, no run folder)"
    seed: int = 0
    command: str = "(called from Python)"


@dataclass
class Figure:
    name: str
    images: torch.Tensor        # (n_rows * n_cols, C, H, W) in [0, 1], row-major
    n_rows: int
    n_cols: int
    title: str
    rows: str                   # caption: what a row is
    columns: str                # caption: what the columns are
    row_labels: list = field(default_factory=list)
    col_labels: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def image_hw(self):
        return tuple(self.images.shape[-2:])


def display_name(method):
    return DISPLAY_NAMES.get(method.name, method.name)


def generator(seed):
    return torch.Generator().manual_seed(int(seed))


def short_names(data, count=None):
    """Class names if they are short (digits), else indices; the caption gives the index -> name key."""
    names = list(data.class_names)
    if count is not None and count != len(names):
        return [str(k) for k in range(count)]
    return names if max(len(n) for n in names) <= 3 else [str(k) for k in range(len(names))]


def class_key(data):
    names = list(data.class_names)
    if short_names(data) == names:
        return []
    return ["Class indices: " + ", ".join(f"{k} = {n}" for k, n in enumerate(names))]


def component_labels(method, data):
    """Row labels for the components / class values a method samples from."""
    if method.has_class_components:
        k = len(method.class_means())
        if method.has_classifier and k == data.num_classes:
            return short_names(data), "one Gaussian component mu_k per row (trained to hold class k)"
        return [f"c{j}" for j in range(k)], "one Gaussian component per row (components are not tied to classes)"
    if getattr(method, "class_code_slice", None) is not None:
        return short_names(data), "one value of the discrete class variable y per row"
    return None, None


# ---- the random choices (method-independent, so comparison panels show the same test images) ---------

def pick_pairs(labels, n, gen):
    """n pairs of test indices (a, b) whose true classes differ."""
    labels = torch.as_tensor(labels)
    if len(torch.unique(labels)) < 2:
        raise BadValueError("interpolation between classes needs test images of at least two classes")
    first, second = [], []
    for _ in range(n):
        a = int(torch.randint(len(labels), (1,), generator=gen))
        others = (labels != labels[a]).nonzero().flatten()
        b = int(others[torch.randint(len(others), (1,), generator=gen)])
        first.append(a)
        second.append(b)
    return torch.tensor(first), torch.tensor(second)


def pick_images(labels, n, gen):
    """n test indices, cycling through the classes in a random order (one random image of each)."""
    labels = torch.as_tensor(labels)
    classes = torch.unique(labels)
    order = classes[torch.randperm(len(classes), generator=gen)]
    chosen = []
    for r in range(n):
        members = (labels == order[r % len(order)]).nonzero().flatten()
        chosen.append(int(members[torch.randint(len(members), (1,), generator=gen)]))
    return torch.tensor(chosen)


@torch.no_grad()
def encode_test(method, data, indices):
    x = to_float(data.test_images[indices]).to(method.device)
    return x, method.encode(x)


@torch.no_grad()
def decode_path(method, codes):
    """codes (N, S, D) -> images (N, S, C, H, W) on the CPU."""
    n, s = codes.shape[:2]
    images = method.decode(codes.reshape(n * s, -1).to(method.device)).cpu()
    return images.reshape(n, s, *images.shape[1:])


def class_moves(method, data, seed, n_rows, what):
    """Test images with their source class (predicted / nearest component) and a random other class."""
    latent_ops.check_class_moves(method, what)
    gen = generator(seed)
    k = latent_ops.num_class_values(method)
    indices = pick_images(data.test_labels, n_rows, gen)
    offsets = torch.randint(1, k, (n_rows,), generator=gen) if k > 1 else torch.zeros(n_rows, dtype=torch.long)
    x, code = encode_test(method, data, indices)
    source = latent_ops.source_classes(method, x, code).cpu()
    other = (source + offsets) % k
    return x.cpu(), code, source, other, indices


def source_rule(method):
    if method.has_classifier:
        return "s = argmax of the method's classifier on the image"
    return "s = the component mean nearest to the code (the method has no classifier)"


def labels_for(method, data, classes):
    if method.has_class_components and not method.has_classifier:
        return [f"c{int(c)}" for c in classes]
    names = short_names(data, latent_ops.num_class_values(method))
    return [names[int(c)] for c in classes]


# ---- the figures ----------------------------------------------------------------------------------------

def samples_figure(method, data, seed, n_cols=10):
    """Figs. 3-5: method.sample with each component / class value repeated n_cols times."""
    gen = generator(seed)
    labels, rows = component_labels(method, data)
    if labels is None:  # no classes (cwae): unconditional samples from draw_classes
        n_rows = data.num_classes
        classes = method.draw_classes(n_rows * n_cols, generator=gen)
        labels, rows = [], "unconditional samples from the prior (the method has no class components)"
    else:
        n_rows = len(labels)
        classes = torch.arange(n_rows).repeat_interleave(n_cols)
    with torch.no_grad():
        images = method.sample(classes, generator=gen).cpu()
    return Figure(name="samples", images=images, n_rows=n_rows, n_cols=n_cols,
                  title=f"{display_name(method)} {data.name}: samples, row = component / class",
                  rows=rows, columns=f"{n_cols} independent samples (latent noise from the seeded generator)",
                  row_labels=labels, notes=class_key(data))


def interpolation_figure(method, data, seed, n_rows=6, steps=INTERPOLATION_STEPS):
    """Fig. 6: real a | decode((1 - t) E(a) + t E(b)) for `steps` t in [0, 1] | real b."""
    gen = generator(seed)
    ia, ib = pick_pairs(data.test_labels, n_rows, gen)
    xa, ca = encode_test(method, data, ia)
    xb, cb = encode_test(method, data, ib)
    ts = torch.linspace(0.0, 1.0, steps)
    codes = torch.stack([latent_ops.interpolate(ca, cb, t.expand(n_rows)) for t in ts], 1)
    decoded = decode_path(method, codes)
    images = torch.cat([xa.cpu()[:, None], decoded, xb.cpu()[:, None]], 1).flatten(0, 1)
    names = short_names(data)
    la, lb = data.test_labels[ia], data.test_labels[ib]
    return Figure(name="interpolation", images=images, n_rows=n_rows, n_cols=steps + 2,
                  title=f"{display_name(method)} {data.name}: linear interpolation between test images",
                  rows=("one pair of test images from different (true) classes, chosen with the seeded "
                        "generator; row label = true class of a -> true class of b"),
                  columns=(f"real image a | {steps} decoded points (1 - t) E(a) + t E(b) for t = "
                           + ", ".join(f"{float(t):.3g}" for t in ts)
                           + " (t = 0 and t = 1 are the decoded codes of a and b, i.e. reconstructions) "
                           "| real image b"),
                  row_labels=[f"{names[int(a)]}->{names[int(b)]}" for a, b in zip(la, lb)],
                  col_labels=["a"] + [f"{float(t):.2g}" for t in ts] + ["b"],
                  notes=class_key(data) + [f"test indices (a, b): {list(zip(ia.tolist(), ib.tolist()))}"])


def style_transfer_figure(method, data, seed, n_rows=6, steps=STYLE_STEPS):
    """Fig. 7: real x | decode of the path z -> z' = z + (mu_t - mu_s) (Eq. 10) in `steps` steps."""
    x, code, source, target, indices = class_moves(method, data, seed, n_rows, "style transfer (Eq. 10)")
    ts = torch.linspace(0.0, 1.0, steps)
    decoded = decode_path(method, latent_ops.style_transfer_path(method, code, source.to(code.device),
                                                                 target.to(code.device), steps))
    images = torch.cat([x[:, None], decoded], 1).flatten(0, 1)
    moving = ("z + t (mu_t - mu_s)" if method.has_class_components else
              "[z, e_s + t (e_t - e_s)] (the one-hot class part moves, the latent z stays)")
    src, tgt = labels_for(method, data, source), labels_for(method, data, target)
    return Figure(name="style_transfer", images=images, n_rows=n_rows, n_cols=steps + 1,
                  title=f"{display_name(method)} {data.name}: style transfer (Eq. 10), source -> target",
                  rows=(f"one test image (one per class, random order and image from the seeded generator); "
                        f"{source_rule(method)}; the target t is a random other class; row label = s->t"),
                  columns=(f"real image | decoded {moving} for t = "
                           + ", ".join(f"{float(t):.3g}" for t in ts)
                           + " (t = 0: reconstruction of z; t = 1: Eq. 10's z')"),
                  row_labels=[f"{s}->{t}" for s, t in zip(src, tgt)],
                  col_labels=["x"] + [f"{float(t):.2g}" for t in ts],
                  notes=class_key(data) + [f"test indices: {indices.tolist()}"])


def intensity_figure(method, data, seed, n_rows=4, alphas=INTENSITY_ALPHAS):
    """Fig. 8: real x | decode of z + a (mu_s - mu_t) (Eq. 11) for each a, t = a random anti-target."""
    x, code, source, anti, indices = class_moves(method, data, seed, n_rows, "class intensity (Eq. 11)")
    decoded = decode_path(method, latent_ops.intensity_path(method, code, source.to(code.device),
                                                            anti.to(code.device), alphas))
    images = torch.cat([x[:, None], decoded], 1).flatten(0, 1)
    moving = ("z + a (mu_s - mu_t)" if method.has_class_components else
              "[z, e_s + a (e_s - e_t)] (the one-hot class part moves, the latent z stays)")
    src, tgt = labels_for(method, data, source), labels_for(method, data, anti)
    return Figure(name="intensity", images=images, n_rows=n_rows, n_cols=len(alphas) + 1,
                  title=f"{display_name(method)} {data.name}: class intensity (Eq. 11), s away from t",
                  rows=(f"one test image; {source_rule(method)}; the anti-target t is a random other class; "
                        "row label = 's away from t'"),
                  columns=(f"real image | decoded {moving} for a = " + ", ".join(f"{a:g}" for a in alphas)
                           + " (a = 0: reconstruction of z; the paper's Fig. 8 uses a = 0.5)"),
                  row_labels=[f"{s} away from {t}" for s, t in zip(src, tgt)],
                  col_labels=["x"] + [f"{a:g}" for a in alphas],
                  notes=class_key(data) + [f"test indices: {indices.tolist()}"])


# ---- writing ------------------------------------------------------------------------------------------

def caption_text(figure, context, files):
    lines = [figure.title, "",
             f"Rows ({figure.n_rows}): {figure.rows}.",
             f"Columns ({figure.n_cols}): {figure.columns}.",
             *figure.notes, "",
             f"Run: {context.run}",
             f"Seed: {context.seed} (torch.Generator for every random choice: test images, pairs, targets, "
             "sampling noise)",
             f"Command: {context.command}",
             f"Files: {', '.join(files)} (plain torchvision save_image grid, {grids.PADDING} px white padding; "
             "the _labelled version adds the row / column labels)"]
    return "\n".join(lines)


def write_figure(figure, out_dir, context=None, labels=True):
    """NAME.png (save_image), NAME_labelled.png and NAME.txt in out_dir; returns the paths."""
    context = context or FigureContext()
    out_dir = Path(out_dir)
    png = grids.save_grid(figure.images, out_dir / f"{figure.name}.png", figure.n_cols)
    paths = [png]
    if labels:
        image = grids.labelled(grids.grid_image(figure.images, figure.n_cols), figure.n_rows, figure.n_cols,
                               figure.image_hw, figure.row_labels, figure.col_labels, figure.title)
        labelled_path = out_dir / f"{figure.name}_labelled.png"
        atomic_write_file(labelled_path, lambda tmp: image.save(tmp, format="PNG"))
        paths.append(labelled_path)
    paths.append(grids.write_caption(png, caption_text(figure, context, [p.name for p in paths])))
    return paths


def _seeded(seed, build, device="cpu"):
    """Run `build` with the global RNG seeded too, for methods that ignore the generator: the CPU's and the
    method's device's generators, both restored afterwards (no other GPU's generator is touched)."""
    with seeded_rng(seed, device):
        return build()


def make_samples(method, data, seed, out_dir, context=None, n_cols=10):
    return write_figure(_seeded(seed, lambda: samples_figure(method, data, seed, n_cols), method.device),
                        out_dir, context)


def make_interpolation(method, data, seed, out_dir, context=None, n_rows=6, steps=INTERPOLATION_STEPS):
    return write_figure(_seeded(seed, lambda: interpolation_figure(method, data, seed, n_rows, steps), method.device),
                        out_dir, context)


def make_style_transfer(method, data, seed, out_dir, context=None, n_rows=6, steps=STYLE_STEPS):
    return write_figure(_seeded(seed, lambda: style_transfer_figure(method, data, seed, n_rows, steps), method.device),
                        out_dir, context)


def make_intensity(method, data, seed, out_dir, context=None, n_rows=4, alphas=INTENSITY_ALPHAS):
    return write_figure(_seeded(seed, lambda: intensity_figure(method, data, seed, n_rows, alphas), method.device),
                        out_dir, context)


def means_markdown(method, data, distances, context):
    k = len(distances)
    names = short_names(data, k)
    if not method.has_classifier:
        names = [f"c{j}" for j in range(k)]
    lines = [f"# {display_name(method)} {data.name}: pairwise Euclidean distances of the learned means", "",
             "| | " + " | ".join(names) + " |", "|---" * (k + 1) + "|"]
    for i in range(k):
        lines.append(f"| **{names[i]}** | " + " | ".join(f"{float(distances[i, j]):.2f}" for j in range(k)) + " |")
    lines += ["", "Nearest other component of each component (Section V: the means are learned, so similar "
              "classes can move close together):", ""]
    off = distances + torch.diag(torch.full((k,), float("inf"), dtype=distances.dtype))
    for i in range(k):
        j = int(off[i].argmin())
        lines.append(f"- {names[i]}: {names[j]} ({float(off[i, j]):.2f})")
    pairs = sorted(((float(distances[i, j]), i, j) for i in range(k) for j in range(i + 1, k)))
    if pairs:
        lines += ["", "Closest pairs: " + ", ".join(f"{names[i]}-{names[j]} ({d:.2f})" for d, i, j in pairs[:5]),
                  "Farthest pairs: " + ", ".join(f"{names[i]}-{names[j]} ({d:.2f})" for d, i, j in pairs[::-1][:5])]
    initial = initial_distance_note(method)
    if initial:
        lines += ["", initial]
    lines += [*(["", *class_key(data)] if class_key(data) else []), "",
              f"Run: {context.run}", f"Command: {context.command}"]
    return "\n".join(lines) + "\n"


def initial_distance_note(method):
    """What the distances were before training (the SeGMA family's initial means, methods/segma.py)."""
    config = method.config
    if not hasattr(config, "mean_init_distance"):
        return ""
    from segma_bench.methods.segma import initial_means
    means = method.class_means()
    start = initial_means(len(means), means.shape[1], config.mean_init_distance).double()
    d = torch.cdist(start, start)
    values = sorted({round(float(v), 4) for v in d[~torch.eye(len(d), dtype=torch.bool)]})
    learned = "learned" if getattr(config, "learn_means", True) else "fixed (learn_means = False)"
    return (f"Before training the means were initialised to distances {', '.join(f'{v:g}' for v in values)} "
            f"(initial_means with distance {config.mean_init_distance:g}); the means are {learned}.")


def make_means(method, data, seed, out_dir, context=None):
    """Class structure (Section V): means_distances.md (table) and means_distances.png (heatmap) + .txt."""
    if not method.has_class_components:
        raise OperationNotSupported(f"the class-structure figure (means) needs learned component means; method "
                                    f"{method.name!r} has no class components in latent space")
    context = context or FigureContext()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    distances = latent_ops.means_distances(method)
    k = len(distances)
    names = short_names(data, k) if method.has_classifier else [str(j) for j in range(k)]
    markdown = out_dir / "means_distances.md"
    atomic_write_text(markdown, means_markdown(method, data, distances, context))
    png = out_dir / "means_distances.png"
    heatmap = grids.heatmap(distances, names, title=f"{display_name(method)} {data.name}: distances between the means")
    atomic_write_file(png, lambda tmp: heatmap.save(tmp, format="PNG"))
    tie = "component k holds class k" if method.has_classifier else "components are not tied to classes"
    caption = "\n".join([
        f"{display_name(method)} {data.name}: pairwise Euclidean distances ||mu_i - mu_j|| of the {k} learned "
        "component means (Section V).",
        f"Rows and columns: component i / j ({tie}); "
        "the value is written in each cell; colour from dark blue (closest pair) to yellow (farthest pair), "
        "the diagonal (0) is grey.", *class_key(data), "",
        f"Run: {context.run}", "Seed: not used (no randomness)", f"Command: {context.command}",
        "Files: means_distances.png (heatmap), means_distances.md (the same numbers as a table)"])
    return [png, markdown, grids.write_caption(png, caption)]


MAKERS = {"samples": make_samples, "interpolation": make_interpolation, "style-transfer": make_style_transfer,
          "intensity": make_intensity, "means": make_means}
BUILDERS = {"samples": samples_figure, "interpolation": interpolation_figure,
            "style-transfer": style_transfer_figure}


def make_figures(method, data, seed, out_dir, kinds=KINDS, context=None, echo=print):
    """Several kinds; with more than one kind, unsupported ones are skipped with a note (else they raise)."""
    kinds = list(kinds)
    written = []
    for kind in kinds:
        try:
            written += MAKERS[kind](method, data, seed, out_dir, context)
        except OperationNotSupported as error:
            if len(kinds) == 1:
                raise
            echo(f"skipped {kind}: {error}")
    return written


# ---- comparison figures across methods (Figs. 3-7) ------------------------------------------------------

def find_runs(runs_root, dataset, method_names=TABLE_METHODS):
    """{method: run folder} for `dataset` under runs_root (training/run_folder.py find_run_folders: a readable
    config.json and a checkpoint), by config.json `run.method` / `run.dataset`. With several runs of a method:
    runs without --set overrides first, then the lowest seed, then the path."""
    found = {}
    for run_dir, run in find_run_folders(runs_root):
        if run.get("dataset") != dataset or run.get("method") not in method_names:
            continue
        key = (bool(run.get("overrides")), int(run.get("seed", 0)), str(run_dir))
        if run["method"] not in found or key < found[run["method"]][0]:
            found[run["method"]] = (key, run_dir)
    return {m: found[m][1] for m in method_names if m in found}


def describe_run(run_dir):
    """'runs/mnist/segma/seed0 (segma on mnist, run seed 0, 37/500 epochs)' from the run's files."""
    folder = RunFolder(run_dir)
    text = str(folder.path)
    try:
        run = json.loads(folder.config.read_text())["run"]
        text += f" ({run['method']} on {run['dataset']}, run seed {run['seed']}"
        if run.get("overrides"):
            text += f", settings {run['overrides']}"
        if folder.metrics.exists():
            metrics = json.loads(folder.metrics.read_text())
            text += f", {metrics['epochs_completed']}/{metrics['epochs_planned']} epochs"
        text += ")"
    except (OSError, ValueError, KeyError):
        pass
    return text


def make_table_figures(runs_root, dataset, out_dir, seed=0, data=None, data_root=None, cache_dir=None,
                       device="auto", kinds=TABLE_KINDS, command="(called from Python)", echo=print):
    """Side-by-side panels (a) M1+M2 (b) ADGM (c) SeGMA from the runs under runs_root, like Figs. 3-7.
    Each method's own grids go to out_dir/METHOD/; a method without a run is skipped with a note."""
    from segma_bench.datasets import load_dataset
    from segma_bench.training import load_trained

    out_dir = Path(out_dir)
    runs = find_runs(runs_root, dataset)
    for name in TABLE_METHODS:
        if name not in runs:
            echo(f"note: no {name} run for {dataset} under {runs_root}: {DISPLAY_NAMES.get(name, name)} is "
                 "left out of the comparison figures")
    if not runs:
        raise FileNotFoundError(f"no run of {', '.join(TABLE_METHODS)} for dataset {dataset!r} under "
                                f"{runs_root} (looked for {CONFIG} with run.method / run.dataset)")
    data = data or load_dataset(dataset, data_root, cache_dir)
    loaded = {name: load_trained(run_dir, data=data, device=device)[2] for name, run_dir in runs.items()}
    written = []
    for kind in kinds:
        panels, titles, used, figures = [], [], [], []
        for name, method in loaded.items():
            context = FigureContext(run=describe_run(runs[name]), seed=seed, command=command)
            try:
                figure = _seeded(seed, lambda: BUILDERS[kind](method, data, seed), method.device)
            except OperationNotSupported as error:
                echo(f"note: {kind} skipped for {name}: {error}")
                continue
            written += write_figure(figure, out_dir / name, context)
            panels.append(grids.labelled(grids.grid_image(figure.images, figure.n_cols), figure.n_rows,
                                         figure.n_cols, figure.image_hw, figure.row_labels, figure.col_labels))
            titles.append(f"({chr(ord('a') + len(titles))}) {display_name(method)}")
            used.append(name)
            figures.append(figure)
        if not panels:
            continue
        number = {"samples": SAMPLE_FIGURE_NUMBER.get(dataset, "3-5"), "interpolation": "6",
                  "style-transfer": "7"}[kind]
        png = out_dir / f"fig{number}_{kind.replace('-', '_')}_{dataset}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        side = grids.side_by_side(panels, titles)
        atomic_write_file(png, lambda tmp: side.save(tmp, format="PNG"))
        first = figures[0]
        caption = [f"Fig. {number} (paper) for {dataset}: {kind}, panels " + ", ".join(titles) + ".",
                   f"Rows: {first.rows}.", f"Columns: {first.columns}.",
                   "Every panel uses the same seed, so the same test images / pairs / sampling noise "
                   "(style transfer targets are 'source + the same random offset', so they agree where the "
                   "methods' predicted classes agree).", *first.notes, ""]
        caption += [f"Panel {t}: run {describe_run(runs[n])}" for t, n in zip(titles, used)]
        missing = [DISPLAY_NAMES.get(n, n) for n in TABLE_METHODS if n not in used]
        if missing:
            caption.append("Left out (no run, or the operation is not supported): " + ", ".join(missing))
        if kind in ("interpolation", "style-transfer"):
            caption.append("The paper shows only ADGM and SeGMA here (M1+M2 omitted for poor quality).")
        caption += [f"Seed: {seed}", f"Command: {command}",
                    f"Each method's own grids and captions: {out_dir}/METHOD/{first.name}*.png"]
        written += [png, grids.write_caption(png, "\n".join(caption))]
    return written
