"""simtrain: simulate images, train classifiers, diagnose learning curves."""
