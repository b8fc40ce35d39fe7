# DeepMerge-DA: reproduce and extend "DeepMerge II" (Ciprijanovic et al. 2021) from raw inputs.
#   snakemake --cores all                      # the embedded synthetic default, offline
#   snakemake --cores all --configfile my.yaml # your own settings on top of config/config.yaml
# Every config key is explained in config/README.md; the logic lives in the deepmerge_da package.
from snakemake.utils import min_version

from snakemake.exceptions import WorkflowError

from deepmerge_da.config import ConfigError, load_yaml

min_version("9.0")


# Snakemake's own parser reports a YAML syntax error without file or line: ours names both.
try:
    load_yaml("config/config.yaml")
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/illustris.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
