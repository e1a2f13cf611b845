"""The roofline model's ranking of row-engine configs (no GPU: the plan for a cuda DeviceSpec is
built on the CPU; nothing runs)."""
import textwrap

from kernelwright.config import SearchConfig
from kernelwright.propose.search.proposer import build_plan

FEW_LONG_ROWS = textwrap.dedent('''
    import torch
    import torch.nn as nn

    class Model(nn.Module):
        """LayerNorm over [C, H, W] of a batch of 2: two rows of 262144 elements."""
        def __init__(self, shape):
            super().__init__()
            self.ln = nn.LayerNorm(shape)

        def forward(self, x):
            return self.ln(x)

    def get_inputs():
        return [torch.randn(2, 64, 64, 64)]

    def get_init_inputs():
        return [(64, 64, 64)]
''')


def test_few_long_rows_rank_split_configs_first_and_distinct_kernels_lead(tmp_path):
    task = tmp_path / "task_ln_few_rows.py"
    task.write_text(FEW_LONG_ROWS)
    plan = build_plan(str(task), "cuda", SearchConfig())
    (rp,) = plan.regions
    # 2 rows on a GPU of 100+ SMs: one program per row leaves it nearly idle; the model (rows and
    # reduced length no longer swapped) must put the split-row mode first.
    assert rp.configs[0].get("SPLIT_BELOW_M", 0) > 2, rp.configs[0]
    assert rp.modelled_s[0] < rp.modelled_s[-1]
    # The first configs are distinct kernels at these shapes, not one kernel under unused knobs.
    from kernelwright.propose.search.family import families
    from kernelwright.propose.search.tune import region_traffic

    family = next(f for f in families() if f.name == rp.match.family)
    numel, _ = region_traffic(rp.region, plan.captured)
    keys = [family.effective(rp.match, c, numel) for c in rp.configs[:6]]
    assert len(set(keys)) == len(keys), keys
