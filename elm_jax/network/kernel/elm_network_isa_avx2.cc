// The fused kernels (network and single neuron) compiled for one instruction set (flags: elm_jax/network/fused_build.py).
#define ELM_ISA_NAMESPACE isa_avx2
#include "elm_network_body.h"
#include "elm_neuron_body.h"
#include "elm_project_body.h"
#include "elm_readout_body.h"
