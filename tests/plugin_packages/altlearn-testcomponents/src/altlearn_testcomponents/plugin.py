from altlearn import hookimpl


@hookimpl
def altlearn_register_datasets(register):
    register("blobs", "altlearn_testcomponents.components:Blobs", summary="noisy class blobs (test plugin)")


@hookimpl
def altlearn_register_layers(register):
    register(
        "scale", "altlearn_testcomponents.components:Scale", summary="multiply by a constant (test plugin)"
    )


@hookimpl
def altlearn_register_optimizers(register):
    register("signsgd", "altlearn_testcomponents.optimizer:SignSGD", summary="sign SGD (test plugin)")
