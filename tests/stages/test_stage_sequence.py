"""Several stages run as one: in order, set up once, named together, stateful when any is."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Resources, Stage, StageSequence


class Double(Stage):
    def process(self, batch):
        return batch.set_column(0, "x", pc.multiply(batch["x"], 2))


class AddOne(Stage):
    resources = Resources(cpus=2.0)

    def setup(self):
        self.ready = True

    def process(self, batch):
        assert self.ready
        return batch.set_column(0, "x", pc.add(batch["x"], 1))


def test_stages_run_in_order_as_one():
    sequence = StageSequence([Double(), AddOne()])
    sequence.setup()
    assert sequence.process(pa.table({"x": [1, 5]}))["x"].to_pylist() == [3, 11]
    assert sequence.stage_name == "Double+AddOne"
    assert sequence.is_stateful and sequence.resources == Resources(cpus=1.0)
    assert not StageSequence([Double()]).is_stateful
