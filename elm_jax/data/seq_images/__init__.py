"""Sequential images: `files` reads CIFAR-10 and Fashion-MNIST as grey levels, `tasks` serves
`scifar` and `scifar_default` as datasets."""
