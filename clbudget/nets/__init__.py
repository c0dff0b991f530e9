"""Networks: backbones (conv2, CIFAR/ImageNet ResNets, their parameter counts) and the
classifier head methods build on.  Below `budget/` (which counts their parameters) and
`methods/` (which trains them); imports only `streams.catalog` for error hints."""
