import sys

LINE = "flood " * 20 + "\n"


def unlearning(net, retain_loader, forget_loader, val_loader):
    for _ in range(200_000):  # about 24 MB on each stream
        sys.stdout.write(LINE)
        sys.stderr.write(LINE)
    print("last line of the flood")
    return net
