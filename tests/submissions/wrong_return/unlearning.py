def unlearning(net, retain_loader, forget_loader, val_loader):
    return net.state_dict(), 1
