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


def plot_bench(results, machine, path):
    """ns/element against n (log-log) per rule and implementation, one panel per dtype, with
    the cache sizes of cpu0 marked where the L2 rule's two arrays fill them."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in results if r["kind"] == "rule"]
    dtypes = sorted({r["dtype"] for r in rows})
    rules = sorted({r["rule"] for r in rows}, key=["l2", "l2-keep", "decay"].index)
    impls = ["l2decay", "numpy", "torch", "native", "stream"]
    styles = {"l2": "-", "l2-keep": ":", "decay": "--"}
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 6), squeeze=False)
    for ax, dtype in zip(axes[0], dtypes):
        itemsize = np.dtype(dtype).itemsize
        for k, impl in enumerate(impls):
            for rule in rules:
                pts = sorted((r["n"], r["ns_per_element"]) for r in rows
                             if r["dtype"] == dtype and r["impl"] == impl and r["rule"] == rule)
                if pts:
                    x, y = zip(*pts)
                    ax.plot(x, y, styles[rule], marker="o", ms=3, color=f"C{k}", label=f"{impl} {rule}")
        for name, size in machine.get("caches", {}).items():
            n = size / (2 * itemsize)  # two arrays (w, grad) of n elements fill the cache
            ax.axvline(n, color="0.6", lw=0.8)
            ax.text(n, 1.0, f" {name} {size // 1024}K", rotation=90, va="top", fontsize=8,
                    color="0.4", transform=ax.get_xaxis_transform())
        ys = [r["ns_per_element"] for r in rows if r["dtype"] == dtype]
        ax.set(xscale="log", yscale="log", ylim=(min(ys) / 1.5, max(ys) * 4),  # room for labels
               xlabel="n (elements per array)", ylabel="ns per element",
               title=f"{dtype}, {machine.get('threads')} threads, {machine.get('cpu')}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
