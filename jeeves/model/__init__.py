"""The classifier: from labelled mail to a served model, and from a served model to decisions.

One module per job; importing this package imports none of them, so ``jeeves status`` can read
the registry without paying for scikit-learn.

Features (what a message looks like to the model):
  ``nlp``          offline tokenising and WordNet lemmatisation (no download, ever)
  ``text_fields``  which text each feature reads: subject, new text, quoted history
  ``cues``         rule-shaped features from the labelling definition, and their context
  ``features``     word and character n-grams and the feature union

Learning (from labels to a model file and its card):
  ``corpus``       labelled corpus directories read into training arrays
  ``inbox``        what an ordinary inbox gets at given thresholds (weighted samples)
  ``selection``    grouped model search, recall thresholds, inbox operating points
  ``training``     fit the winner on everything and describe it in a model card
  ``registry``     the models directory: files, cards and ``CURRENT`` (its only writer)
  ``retrain``      champion/challenger: promote only what is no worse

Using a model:
  ``serving``      load a verified model; score, decide (text, digest, nothing), explain
  ``classify``     score stored messages and queue their alerts in one transaction
  ``evaluation``   metrics, plots and reports on labelled mail
  ``review``       label the messages the model is least sure about
"""
