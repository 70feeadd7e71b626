"""`python -m eoclip.train ...` = `eoclip pretrain ...`; the form torchrun launches:

    torchrun --nproc_per_node=4 -m eoclip.train --config demo --store demo_out/world --out runs
"""

import typer

from eoclip.cli.pretrain import register

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
register(app)  # a single command: typer runs it without a verb

if __name__ == "__main__":
    app(prog_name="python -m eoclip.train")
