import * as core from '@actions/core';
import { run } from './main';
import { post } from './post';

// The same bundle is the main and the post step; the main step leaves state for the post one.
if (core.getState('is-post') === 'true') {
  post();
} else {
  core.saveState('is-post', 'true');
  void run();
}
