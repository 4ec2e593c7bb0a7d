def unlearning(net, retain_loader, forget_loader, val_loader):
    net.to("cuda")
    return net
