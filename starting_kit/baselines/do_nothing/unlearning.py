"""Baseline: do nothing.

Returns the original model unchanged. It keeps the original's accuracy (the
retain and test accuracy ratios are about 1) but forgets nothing: the forget
examples stay as confidently classified as any training example, which the
attacks easily tell apart from retrained models. The score every real method
has to beat.
"""


def unlearning(net, retain_loader, forget_loader, val_loader):
    """Leave ``net`` (a ResNet-18 already on its device) as it is."""
    net.eval()
    return net
