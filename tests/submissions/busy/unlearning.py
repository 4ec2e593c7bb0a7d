import time


def unlearning(net, retain_loader, forget_loader, val_loader):
    """Keeps one core busy for 3 CPU seconds, then returns the model unchanged."""
    end = time.process_time() + 3.0
    while time.process_time() < end:
        pass
    return net
