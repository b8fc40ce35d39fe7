from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.report.environment import write_environment_stamp

with rule_logging(snakemake.log[0]):
    write_environment_stamp(snakemake.output[0], train_threads=snakemake.params.train_threads)
