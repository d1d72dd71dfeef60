@_exported import Device
