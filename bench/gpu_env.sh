# Source this on the GPU machine (no registry there): makes kernelwright importable from the
# checkout and installs the carried wheels (.whl/) that the image lacks. Usage: . bench/gpu_env.sh
set -u
mkdir -p /tmp/site
if ! python3 -c 'import typer, rich, jinja2' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/typer-*.whl .whl/rich-*.whl \
    .whl/shellingham-*.whl .whl/annotated_doc-*.whl .whl/markdown_it_py-*.whl .whl/mdurl-*.whl .whl/pygments-*.whl
fi
python3 -c 'import liger_kernel' 2>/dev/null || \
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/liger_kernel-*.whl
export PYTHONPATH="$PWD/src:/tmp/site"
export OUT="${OUT:-$PWD/bench/results}"
python3 -c 'import torch, triton; print("gpu:", torch.cuda.get_device_name(0), "torch", torch.__version__, "triton", triton.__version__)'
