"""# noop (Python)

Accepts and delivers every event unchanged: the benchmark's baseline for what a Python plugin
costs per event (the events handed to CPython and the decisions back)."""

from sluice_plugin import Accept, Deliver, Plugin, export

ACCEPT, DELIVER = Accept(), Deliver()


class Noop(Plugin):
    name = "noop"

    def produce(self, event):
        return ACCEPT

    def consume(self, event):
        return DELIVER


export(Noop())
