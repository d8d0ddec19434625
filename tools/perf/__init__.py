"""Performance tools: training and inference speed beside keras.applications (``benchmark``) and
PyTorch (``compare_pytorch``), where a step's time goes (``profile_step``), the convolution kernels
(``benchmark_conv``) and the input pipelines (``benchmark_input``). Each writes its raw JSON with
the command and the machine (``keras_resnet.benchmarking.write_record``)."""
