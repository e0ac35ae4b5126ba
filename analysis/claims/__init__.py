"""The docs/science.md §8 claims, each decided from the data with an interval: the decision
rules of claims 1-3 (`decide`), the scaling law (`law`), the information model's out-of-sample
test (`model`), the written-down predictions (`predictions`), the training-length check
(`length`), the sequential placement of a budget's points (`placement`) and the shared
record types (`types`)."""
