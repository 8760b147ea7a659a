"""Figures for `l2decay ... --plot` (needs the optional `plot` extra: matplotlib)."""


def require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "--plot needs matplotlib: install the plot extra, pip install 'l2decay[plot]'"
        ) from None


def _pyplot():
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    return plt


def plot_runs(runs, path):
    """Per rule, over its seeds: test accuracy, test loss and the weight norm ||W|| (all weight
    matrices, from the step's statistics) per epoch (the mean, and the band from the lowest to
    the highest seed; train accuracy dashed), and the weights after training (all seeds pooled)."""
    import numpy as np

    plt = _pyplot()
    rules = list(dict.fromkeys(r["rule"] for r in runs))
    seeds = sorted({r.get("seed", 0) for r in runs})
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.6))
    for k, rule in enumerate(rules):
        mine = [r for r in runs if r["rule"] == rule]
        color = f"C{k}"
        label = rule if rule == "none" else f"{rule} {mine[0]['strength']:g}"
        epochs = [h["epoch"] for h in mine[0]["history"]]
        norm = lambda h: float(np.sqrt(np.sum(np.square(h["layer_norms"]))))  # noqa: E731
        for ax, value in ((axes[0], lambda h: h["test_accuracy"]), (axes[1], lambda h: h["test_loss"]),
                          (axes[2], norm)):
            if value is norm and not all(h.get("layer_norms") for r in mine for h in r["history"]):
                continue        # (runs resumed from checkpoints of older versions)
            curves = np.array([[value(h) for h in r["history"]] for r in mine])
            ax.plot(epochs, curves.mean(axis=0), color=color, label=label)
            if len(mine) > 1:
                ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.15, lw=0)
        train = np.array([[h["train_accuracy"] for h in r["history"]] for r in mine])
        axes[0].plot(epochs, train.mean(axis=0), color=color, ls="--", lw=1)
    over = f"mean over {len(seeds)} seeds, band: lowest to highest" if len(seeds) > 1 else f"seed {seeds[0]}"
    axes[0].set(xlabel="epoch", ylabel="accuracy (dashed: train, solid: test)", title=f"accuracy ({over})")
    axes[0].legend()
    axes[1].set(xlabel="epoch", ylabel="test loss", yscale="log", title=f"test loss ({over})")
    axes[1].legend()
    axes[2].set(xlabel="epoch", ylabel="||W||", title="weight norm (all weight matrices)")
    axes[2].legend()
    ax = axes[3]
    hi = max(float(np.max(np.abs(r["weights"]))) for r in runs)
    bins = np.linspace(-hi, hi, 81)
    for k, rule in enumerate(rules):
        w = np.concatenate([r["weights"] for r in runs if r["rule"] == rule])
        ax.hist(w, bins=bins, histtype="step", color=f"C{k}", label=rule)
    ax.set(xlabel="weight value", ylabel="count", yscale="log",
           title="weight matrices after training" + (f" ({len(seeds)} seeds pooled)" if len(seeds) > 1 else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bench(results, machine, path):
    """ns/element against n (log-log) per rule and implementation, one panel per dtype, with
    the cache sizes of cpu0 marked where the L2 rule's two arrays fill them."""
    import numpy as np

    plt = _pyplot()
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


def plot_sweep(results, analysis, path, momentum=0.9):
    """One heatmap of the mean test loss per (optimizer, rule): lr up, strength across, both
    log; each lr's best strength (the valley) as dots and its least-squares line dashed, the
    slope in the title.  Diverged runs are grey."""
    import numpy as np
    from matplotlib.colors import LogNorm

    from .sweep import _signed, shape, surface

    plt = _pyplot()
    optimizers = list(dict.fromkeys(a["optimizer"] for a in analysis))
    rules = list(dict.fromkeys(a["rule"] for a in analysis))
    by = {(a["optimizer"], a["rule"]): a for a in analysis}
    fig, axes = plt.subplots(len(optimizers), len(rules), figsize=(4.6 * len(rules), 3.9 * len(optimizers)),
                             squeeze=False)
    titles = {"l2": "L2", "decoupled": "Decoupled (w *= 1 - lr*s)", "decay": "Decay (w *= 1 - s)"}
    for row, opt in enumerate(optimizers):
        # one colour scale per optimizer, so that its three rules compare at a glance
        surfaces = {rule: surface(results, opt, rule) for rule in rules if (opt, rule) in by}
        finite = np.concatenate([z[np.isfinite(z)] for _, _, z in surfaces.values()])
        low = float(finite.min()) if finite.size else 0.1
        # up to twice the best loss: the valley's shape is in that range, and worse cells saturate
        norm = LogNorm(vmin=low, vmax=2 * low)
        for col, rule in enumerate(rules):
            ax = axes[row][col]
            if rule not in surfaces:
                ax.axis("off")
                continue
            lrs, strengths, z = surfaces[rule]
            x, y = np.log10(strengths), np.log10(lrs)
            # cell edges halfway between grid points, in log space
            xe = np.concatenate([[x[0] - (x[1] - x[0]) / 2 if x.size > 1 else x[0] - 0.5],
                                 (x[1:] + x[:-1]) / 2, [x[-1] + (x[-1] - x[-2]) / 2 if x.size > 1 else x[0] + 0.5]])
            ye = np.concatenate([[y[0] - (y[1] - y[0]) / 2 if y.size > 1 else y[0] - 0.5],
                                 (y[1:] + y[:-1]) / 2, [y[-1] + (y[-1] - y[-2]) / 2 if y.size > 1 else y[0] + 0.5]])
            cmap = plt.get_cmap("viridis").copy()
            cmap.set_bad("0.75")
            mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(z), cmap=cmap, norm=norm, shading="flat")
            a = by[opt, rule]
            pts = np.array([(p["log10_best_strength"], p["log10_lr"]) for p in a["valley"]]).reshape(-1, 2)
            inside = np.array([p["inside_grid"] for p in a["valley"]], dtype=bool)
            ax.plot(pts[inside, 0], pts[inside, 1], "o", color="white", mec="black", ms=6, label="best per lr")
            ax.plot(pts[~inside, 0], pts[~inside, 1], "o", color="none", mec="white", ms=6, label="best at the edge")
            if a["slope"] is not None and inside.sum() >= 2:
                k, c = np.polyfit(pts[inside, 1], pts[inside, 0], 1)  # strength as a function of lr
                ax.plot(k * ye + c, ye, "--", color="white", lw=1.2)
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            slope = "n/a" if a["slope"] is None else _signed(a["slope"])
            name = f"SGD m={momentum:g}" if opt == "sgd" else "Adam"
            ax.set_title(f"{name}, {titles.get(rule, rule)}\nslope {slope}: {shape(a['slope'])}", fontsize=10)
            ax.set_xlabel(f"log10 strength ({rule})")
            ax.set_ylabel("log10 learning rate")
            fig.colorbar(mesh, ax=ax, label="mean test loss", extend="max")
    seeds = sorted({r["seed"] for r in results})
    fig.suptitle(f"Final test loss over learning rate x strength ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}); "
                 f"dots: each lr's best strength, dashed: their fit; grey: diverged", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)
