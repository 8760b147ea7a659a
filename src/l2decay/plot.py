"""Figures for `l2decay ... --plot` (needs the optional `plot` extra: matplotlib)."""


def require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "--plot needs matplotlib: install the plot extra, pip install 'l2decay[plot]'"
        ) from None


def plot_runs(runs, path):
    """Learning curves (train/test accuracy per epoch per rule) and weight histograms per rule."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    for k, r in enumerate(runs):
        color = f"C{k}"
        epochs = [h["epoch"] for h in r["history"]]
        label = r["rule"] if r["rule"] == "none" else f"{r['rule']} {r['strength']:g}"
        ax.plot(epochs, [h["train_accuracy"] for h in r["history"]], color=color, ls="--", lw=1)
        ax.plot(epochs, [h["test_accuracy"] for h in r["history"]], color=color, label=label)
    ax.set(xlabel="epoch", ylabel="accuracy (dashed: train, solid: test)", title="learning curves")
    ax.legend()
    ax = axes[1]
    hi = max(float(np.max(np.abs(r["weights"]))) for r in runs)
    bins = np.linspace(-hi, hi, 81)
    for k, r in enumerate(runs):
        ax.hist(r["weights"], bins=bins, histtype="step", color=f"C{k}", label=r["rule"])
    ax.set(xlabel="weight value", ylabel="count", yscale="log", title="weight matrices after training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
