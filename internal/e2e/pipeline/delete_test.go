package pipeline_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/pipeline"
)

// A pipeline whose execution waits for a person is not deleted (409);
// once the execution is stopped it is, its executions kept as history
// unless purge says otherwise.
func TestDeleteBusyPipeline(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	base := st.cleanBase()
	name := "del-" + st.id
	st.setUp(name, hosted(name, byPerson))
	commit := st.commit("first", app(base, "one"))
	id := st.waitStarted(name, commit, 10*time.Second)
	st.waitApproval(id, 30*time.Second)

	body := st.api("DELETE", "/api/v1/pipelines/"+name, nil, http.StatusConflict)
	if !strings.Contains(string(body), "executions in progress") {
		t.Errorf("delete of a busy pipeline: %s", body)
	}
	st.api("GET", "/api/v1/pipelines/"+name, nil, http.StatusOK)

	st.api("POST", "/api/v1/executions/"+id+"/stop", map[string]string{"reason": "test"}, http.StatusNoContent)
	st.waitEnded(id, 30*time.Second)
	st.api("DELETE", "/api/v1/pipelines/"+name, nil, http.StatusNoContent)
	st.api("GET", "/api/v1/pipelines/"+name, nil, http.StatusNotFound)
	// Without purge, the execution stays, as history.
	if ex := st.execution(id); ex.Status != pipeline.StateStopped {
		t.Errorf("execution after the pipeline's delete: %s, want Stopped and kept", ex.Status)
	}
}
