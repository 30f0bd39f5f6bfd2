"""Examples shown at the end of `python cli.py --help` and of each command's --help."""

EXAMPLES = {
    None: """python cli.py methods
python cli.py train --method segma --dataset mnist --epochs 5 --data-root ../shared/data
python cli.py --plugin examples/my_method.py train --method my-method --dataset mnist --epochs 1""",
    "methods": """python cli.py methods
python cli.py methods --settings segma          # what --set accepts, with types
python cli.py --plugin examples/my_method.py methods""",
    "train": """python cli.py train --method segma --dataset mnist --seed 0 --data-root ../shared/data
python cli.py train --method cwae --dataset mnist --epochs 5 --set learning_rate=1e-3 --set hidden=64,64
python cli.py train --method segma --dataset mnist --recipe authors-code --run-dir runs/authors
python cli.py train --method segma --dataset mnist --tracker tensorboard   # then: tensorboard --logdir runs""",
    "reproduce": """python cli.py reproduce --table 2 --dataset mnist --budget quick --seeds 2
python cli.py reproduce --table 1 --dataset mnist --data-root ../shared/data \\
    --fid-weights ../shared/weights/pt_inception-2015-12-05.pth
python cli.py --plugin examples/my_method.py reproduce --table 2 --method my-method""",
    "table": """python cli.py table --table 1 --budget quick
python cli.py table --table 2 --results-dir results""",
    "evaluate": """python cli.py evaluate --run runs/mnist/segma/seed0 --metric test_error
python cli.py evaluate --run runs/mnist/segma/seed0 --fid-samples 2000 --data-root ../shared/data""",
    "report": """python cli.py report --run runs/mnist/segma/seed0 --out results/segma_mnist_seed0.md
python cli.py report --run runs/mnist/segma/seed0 --out results/segma_mnist_seed0.md --force   # replace it""",
    "confusion": """python cli.py confusion --run runs/mnist/adgm/seed1 --data-root ../shared/data""",
    "fid": """python cli.py fid samples/ mnist:test --data-root ../shared/data      # a folder of PNGs against MNIST test
python cli.py fid generated.npz mnist:train --num-real 10000""",
    "kid": """python cli.py kid samples/ mnist:test --data-root ../shared/data
python cli.py kid a.npy b.npy""",
    "prc": """python cli.py prc samples/ mnist:train --data-root ../shared/data   # precision, recall of samples/
python cli.py prc mnist:test mnist:train --num-real 10000             # real against real (the floor)""",
    "curves": """python cli.py curves results/segma_mnist_long_run.json runs/mnist/segma/seed0 --out curves.png
python cli.py curves results/runs/comparable/mnist-adgm-seed0.json --paper 4.1 --losses --out adgm.png""",
    "status": """python cli.py status                 # writes results/README.md
python cli.py status my-results/""",
    "extrapolate": """python cli.py extrapolate results/adgm_mnist_maaloe_code.json --first 20
python cli.py extrapolate results/runs/comparable/mnist-adgm-seed0.json --at 200 --at 400 --target 0.041""",
    "ablation": """python cli.py ablation --out results/my_ablation.md --epochs 10,20,40 \\
    baseline=results/segma_mnist_long_run.json authors-code=results/segma_mnist_authors_code.json""",
    "long-runs": """python cli.py long-runs seed0=results/segma_mnist_501_seed0.json seed1=results/segma_mnist_501_seed1.json \\
    --paper 12.7 --passes 501 --out results/segma_mnist_501.md""",
    "label-subsets": """python cli.py label-subsets --dataset mnist --seeds 0-9 --data-root ../shared/data
python cli.py label-subsets --dataset mnist --labeled first --data-root ../shared/data""",
    "figures": """python cli.py figures --run runs/mnist/segma/seed0 --kind all
python cli.py figures --table-figures --dataset mnist --runs-root runs""",
}


def epilog(examples):
    # \b keeps click from re-wrapping the lines of the paragraph that follows it
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in examples.splitlines())


def add_examples(group):
    """Give the group and each command named in EXAMPLES its examples; commands without any keep none
    (tests/test_cli_hardening.py checks that every command has some)."""
    group.epilog = epilog(EXAMPLES[None])
    for name, command in group.commands.items():
        if name in EXAMPLES and not command.epilog:
            command.epilog = epilog(EXAMPLES[name])
