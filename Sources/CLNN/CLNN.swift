// The library in one import: `import CLNN` brings tensors, devices and ops (`Device`) and modules, losses,
// optimisers, data and training (`NN`).
@_exported import Device
@_exported import NN
