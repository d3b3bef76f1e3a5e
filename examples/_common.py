"""Helpers shared by the examples: device choice, progress bars, a classification epoch."""
import sys

import needle as ndl

try:
    from tqdm import tqdm
except ImportError:  # the bar is a nicety; training works without it
    def tqdm(iterable, **kwargs):
        return iterable


def pick_device(name):
    """The device for --backend: 'auto' takes the fastest one installed."""
    if name == "auto":
        return ndl.cuda() if ndl.cuda().enabled() else ndl.cpu()
    dev = ndl.device(name)
    if not dev.enabled():
        sys.exit(f"--backend {name}: {dev.disabled_reason}")
    return dev


def progress(iterable, **kwargs):
    """A tqdm bar on a terminal (none when output is redirected)."""
    return tqdm(iterable, leave=False, disable=None, **kwargs)


def run_classification_epoch(model, loader, loss_fn, opt=None, desc=""):
    """One pass over ``loader``; trains when ``opt`` is given. Returns (mean loss, accuracy)."""
    model.train() if opt is not None else model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in progress(loader, desc=desc, unit="batch"):
        logits = model(x)
        loss = loss_fn(logits, y)
        if opt is not None:
            opt.reset_grad()
            loss.backward(create_graph=False)
            opt.step()
        n = x.shape[0]
        total_loss += loss.item() * n
        correct += int((logits.numpy().argmax(axis=1) == y.numpy()).sum())
        seen += n
    return total_loss / seen, correct / seen
