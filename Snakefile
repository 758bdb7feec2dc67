"""lossboard: models x losses x datasets x seeds -> train -> evaluate -> compare -> site."""

from snakemake.utils import min_version

min_version("8.20")


# The quickstart grid unless a config is given (`--configfile config/paper.yaml`): a given config
# replaces it rather than being merged into it.
if not config:

    configfile: "config/config.yaml"



include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/synthesize.smk"
include: "rules/loss_check.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/generative.smk"
include: "rules/compare.smk"
include: "rules/site.smk"


rule all:
    input:
        f"{SITE}/index.html",
    default_target: True


onsuccess:
    print(f"lossboard: the leaderboard is at {SITE}/index.html")
