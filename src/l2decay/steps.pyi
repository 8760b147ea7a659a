from ._kernels import adam_step as adam_step, decay_step as decay_step, l2_step as l2_step, sgd_step as sgd_step
